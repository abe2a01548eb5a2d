"""Small annotation files in each benchmark's official layout (invented content, real field names),
shared by the loader tests and the bad-input corpus. ``FIXTURES[task](root)`` writes them under
``root`` and returns their paths, the main file first."""

import json

from pave.data.datasets import TASKS


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def avsd_files(root):
    dialogs = [
        {
            "image_id": "Q7ZK1",
            "caption": "a person folds a towel .",
            "summary": "someone tidies up .",
            "dialog": [
                {"question": "is anyone talking ?", "answer": "no , there is no speech ."},
                {"question": "what does he do at the end ?", "answer": "he walks out of the room ."},
            ],
        },
        {"image_id": "ZZ9P0", "dialog": [{"question": "is it dark ?", "answer": "__UNDISCLOSED__"}]},
    ]
    return [write(root / "mock_test_set4DSTC10-AVSD_from_DSTC7_singref.json", {"dialogs": dialogs})]


def avqa_files(root):
    records = [
        {
            "id": 90001,
            "video_name": "AbCdEfGhIjK_000030",
            "video_id": 4242,
            "question_text": "What is making the ringing sound?",
            "multi_choice": ["bell", "phone", "alarm clock", "bicycle"],
            "answer": 1,
            "question_relation": "Both",
            "question_type": "Come From",
        }
    ]
    return [write(root / "val_qa.json", records)]


def music_avqa_files(root):
    base = {"question_deleted": 0, "type": '["Visual", "Location"]'}
    records = [
        {
            **base,
            "video_id": "00001234",
            "question_id": 777,
            "question_content": "What is the instrument on the <LR> of <Object>？",
            "templ_values": '["left", "violin"]',
            "anser": "piano",
        },
        # Repeated question id with another answer, as in the official test file.
        {
            **base,
            "video_id": "sa1234",
            "question_id": 777,
            "type": '["Audio-Visual", "Counting"]',
            "question_content": "How many instruments are sounding?",
            "templ_values": "[]",
            "anser": "two",
        },
    ]
    return [write(root / "avqa-test.json", records)]


def scanqa_files(root):
    records = [
        {
            "answers": ["brown wooden table", "table"],
            "object_ids": [7],
            "object_names": ["table"],
            "question": "What is placed in front of the blue couch?",
            "question_id": "val-scene0999-0",
            "scene_id": "scene0999_00",
        }
    ]
    return [write(root / "ScanQA_v1.0_val.json", records)]


def sqa3d_files(root):
    questions = {
        "info": {},
        "questions": [
            {
                "alternative_situation": ["I face the desk."],
                "question": "Which side is the window on?",
                "question_id": 220602099001,
                "scene_id": "scene0999_00",
                "situation": "I am sitting on the bed facing the desk.",
            },
            {
                "alternative_situation": [],
                "question": "Could I reach the lamp?",
                "question_id": 220602099002,
                "scene_id": "scene0999_00",
                "situation": "I stand by the door.",
            },
        ],
    }
    annotations = {
        "annotations": [
            {
                "question_id": qid,
                "scene_id": "scene0999_00",
                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": 1}],
                "answer_type": "other",
                "question_type": "N/A",
                "position": {"x": 0.1, "y": 0.2, "z": 0.0},
                "rotation": {"_w": 1.0, "_x": 0.0, "_y": 0.0, "_z": 0.0},
            }
            for qid, answer in ((220602099001, "left"), (220602099002, "rarely seen answer"))
        ]
    }
    vocabulary = [{"left": 0, "yes": 1}, {"0": "left", "1": "yes"}]
    return [
        write(root / "v1_balanced_questions_test_scannetv2.json", questions),
        write(root / "v1_balanced_sqa_annotations_test_scannetv2.json", annotations),
        write(root / "answer_dict.json", vocabulary),
    ]


def egoexo_proficiency_files(root):
    take = "takes/sample_basketball_01_2/frame_aligned_videos"
    annotations = [
        {
            "task_id": 9001,
            "task_name": "Sample Drill",
            "scenario_name": "Basketball",
            "university_id": "ego4d-sample",
            "origin_participant_id": "42",
            "take_uid": "00000000-1111-2222-3333-444444444444",
            "video_paths": {
                "ego": f"{take}/aria01_214-1.mp4",
                **{f"exo{i}": f"{take}/cam0{i}.mp4" for i in range(1, 5)},
            },
            "proficiency_score": "Intermediate Expert",
        }
    ]
    return [write(root / "annotations/proficiency_demonstrator_val.json", {"annotations": annotations})]


def llava_video_files(root):
    def record(video_id, k):
        return {
            "id": video_id,
            "data_source": "1_2_m_academic_v0_1",
            "video": f"academic_source/activitynet/{video_id}.mp4",
            "conversations": [
                {"from": "human", "value": f"<image>\nWhat happens in part {k}?"},
                {"from": "gpt", "value": f"Part {k} shows a parade."},
            ],
        }

    folder = root / "1_2_m_academic_v0_1"
    return [write(folder / "1_2_m_academic_oe_v0_1_qa_processed.json", [record("v_A", 0), record("v_A", 1)])]


def videomme_files(root):
    rows = [
        {
            "video_id": "001",
            "duration": "short",
            "domain": "Knowledge",
            "sub_category": "Astronomy",
            "url": "https://www.youtube.com/watch?v=XXXXXXXXXXX",
            "videoID": "XXXXXXXXXXX",
            "question_id": "001-1",
            "task_type": "Counting Problem",
            "question": "How many planets are shown?",
            "options": ["A. Two.", "B. Three.", "C. Four.", "D. Five."],
            "answer": "C",
        }
    ]
    return [write(root / "videomme/test.json", rows)]


def mvbench_files(root):
    records = [
        {
            "video": "AB12C.mp4",
            "question": "What happened after the person took the cup?",
            "candidates": ["Put down the cup.", "Opened the door.", "Sat on the bed."],
            "answer": "Opened the door.",
            "start": 3.4,
            "end": 12.9,
        }
    ]
    other = [{"video": "p.mp4", "question": "Is it left?", "candidates": ["yes", "no"], "answer": "no"}]
    return [
        write(root / "json/action_sequence.json", records),
        write(root / "json/object_shuffle.json", other),
    ]


def mlvu_files(root):
    records = [
        {
            "video": "movie101_999.mp4",
            "duration": 300,
            "question": "What colour is the car the hero drives?",
            "candidates": ["Red", "Blue", "Black", "White"],
            "answer": "Blue",
            "question_type": "plotQA",
        }
    ]
    return [write(root / "data/1_plotQA.json", records)]


def qa_files(root):
    records = [
        {
            "id": "cat-1",
            "video": "clips/cat.mp4",
            "question": "What does the cat do?",
            "choices": ["sleeps", "jumps", "eats"],
            "answer": "jumps",
            "group": "indoor",
        },
        {"video": "clips/dog.mp4", "question": "Describe the dog.", "answer": ["A dog runs.", "It runs."], "metric": "caption"},
    ]
    lines = "".join(json.dumps(r) + "\n" for r in records)
    path = root / "mine.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lines + "\n", encoding="utf-8")
    return [path]



def avsd_v1_files(root):
    """``avsd_train.json`` of the AVSD v1.0 release: videos keyed by id, ten turns each."""
    turns = [{"question": f"question {k} ?", "answer": f"answer {k} ."} for k in range(10)]
    content = {"Q7ZK1": {"summary": "someone tidies up .", "script": "A person folds a towel.", "data": turns}}
    return [write(root / "avsd_train.json", content)]


FIXTURES = {name: globals()[f"{name}_files"] for name in TASKS}
