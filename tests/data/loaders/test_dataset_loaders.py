"""Every benchmark loader on small files in the official layout (invented content, real field names)."""

import json
from pathlib import Path

import pytest

from official_files import (
    FIXTURES,
    avqa_files,
    avsd_files,
    avsd_v1_files,
    egoexo_proficiency_files,
    llava_video_files,
    music_avqa_files,
    scanqa_files,
    sqa3d_files,
    videomme_files,
    write,
)
from pave import recipes
from pave.data.datasets import TASKS, AnnotationError, get_loader, load_samples, missing_media
from pave.data.datasets.protocol import TaskProtocol, get_protocol
from pave.recipes import load_recipe

# (task, expected ids, expected fields of the first sample)
EXPECTED = [
    (
        "avsd",
        ["Q7ZK1", "ZZ9P0"],
        {
            "question": "what does he do at the end ?",
            "answers": ("he walks out of the room .",),
            "history": (("is anyone talking ?", "no , there is no speech ."),),
            "video": "Q7ZK1.mp4",
            "side_channels": {"audio": ("Q7ZK1.mp4",)},
        },
    ),
    (
        "avqa",
        ["90001"],
        {
            "answer_letter": "B",
            "answers": ("phone",),
            "video": "AbCdEfGhIjK_000030.mp4",
            "groups": {"question_type": "Come From", "question_relation": "Both"},
        },
    ),
    (
        "music_avqa",
        ["777@0", "777@1"],
        {
            "question": "What is the instrument on the left of violin？",
            "answers": ("piano",),
            "video": "MUSIC-AVQA-videos-Real/00001234.mp4",
            "groups": {"modality": "Visual", "type": "Visual/Location"},
        },
    ),
    (
        "scanqa",
        ["val-scene0999-0"],
        {"answers": ("brown wooden table", "table"), "scene_id": "scene0999_00", "video": None},
    ),
    (
        "sqa3d",
        ["220602099001", "220602099002"],
        {
            "prompt": "I am sitting on the bed facing the desk. Which side is the window on?",
            "answers": ("left",),
            "groups": {"type": "Which"},
        },
    ),
    (
        "egoexo_proficiency",
        ["00000000-1111-2222-3333-444444444444"],
        {
            "answers": ("Intermediate Expert",),
            "video": "takes/sample_basketball_01_2/frame_aligned_videos/downscaled/448/aria01_214-1.mp4",
            "groups": {"scenario": "Basketball"},
        },
    ),
    (
        "llava_video",
        ["v_A#0", "v_A#1"],
        {
            "question": "What happens in part 0?",
            "answers": ("Part 0 shows a parade.",),
            "video": "1_2_m_academic_v0_1/academic_source/activitynet/v_A.mp4",
            "groups": {"duration": "1_2_m"},
        },
    ),
    (
        "videomme",
        ["001-1"],
        {
            "options": ("Two.", "Three.", "Four.", "Five."),
            "answer_letter": "C",
            "answers": ("Four.",),
            "video": "data/XXXXXXXXXXX.mp4",
            "groups": {"duration": "short", "domain": "Knowledge", "task_type": "Counting Problem"},
        },
    ),
    (
        "mvbench",
        ["action_sequence/0", "object_shuffle/0"],
        {
            "answer_letter": "B",
            "clip": (3.4, 12.9),
            "video": "star/Charades_v1_480/AB12C.mp4",
            "groups": {"task": "action_sequence"},
        },
    ),
    (
        "mlvu",
        ["1_plotQA/0"],
        {"answer_letter": "B", "video": "plotQA/movie101_999.mp4", "groups": {"task": "plotQA"}},
    ),
    (
        "qa",
        ["cat-1", "mine-1"],
        {
            "answer_letter": "B",
            "answers": ("jumps",),
            "options": ("sleeps", "jumps", "eats"),
            "prompt": "What does the cat do?\nA. sleeps\nB. jumps\nC. eats\n"
            "Answer with the option's letter from the given choices directly.",
            "video": "clips/cat.mp4",
            "side_channels": {"audio": ("clips/cat.mp4",), "video": ("clips/cat.mp4",)},
            "groups": {"group": "indoor"},
            "metric": None,
        },
    ),
]


def test_every_task_has_a_fixture_and_an_expectation():
    assert sorted(task for task, _, _ in EXPECTED) == sorted(TASKS)


@pytest.mark.parametrize(("task", "ids", "fields"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_loader_reads_official_layout(tmp_path, task, ids, fields):
    samples = load_samples(task, FIXTURES[task](tmp_path))
    assert [s.id for s in samples] == ids
    first = samples[0]
    assert first.task == task
    assert first.prompt
    for name, value in fields.items():
        assert getattr(first, name) == value, name


def test_avsd_hidden_answer_leaves_no_reference(tmp_path):
    samples = load_samples("avsd", avsd_files(tmp_path))
    assert samples[1].answers == ()


def test_avsd_v1_dialogues_become_chunks_of_five_turns(tmp_path):
    samples = load_samples("avsd", avsd_v1_files(tmp_path))
    assert [s.id for s in samples] == ["Q7ZK1_0", "Q7ZK1_1"]
    second = samples[1]
    assert second.question == "question 9 ?" and second.answers == ("answer 9 .",)
    assert second.history == tuple((f"question {k} ?", f"answer {k} .") for k in range(5, 9))
    assert second.video == "Q7ZK1.mp4" and second.source == "avsd_train.json#0"


def test_avsd_v1_layout_errors_name_the_video_and_field(tmp_path):
    path = write(tmp_path / "avsd_train.json", {"Q7ZK1": ["not", "an", "object"]})
    with pytest.raises(AnnotationError, match=r"avsd_train\.json, record 0: video 'Q7ZK1': expected an object with 'data'"):
        load_samples("avsd", [path])
    path = write(tmp_path / "avsd_train.json", {"Q7ZK1": {"data": [{"question": "q ?"}]}})
    with pytest.raises(AnnotationError, match=r"record 0, field 'data\[0\]\.answer': missing"):
        load_samples("avsd", [path])


def test_mlvu_answers_the_official_scorer_cannot_find_are_kept_and_repeats_take_the_last(tmp_path, caplog):
    base = {"video": "v.mp4", "duration": 300, "question": "q?", "question_type": "findNeedle"}
    records = [
        {**base, "candidates": ["Red", "Blue", "Black", "White"], "answer": "Green"},
        {**base, "candidates": ["Red", "Blue", "Red", "White"], "answer": "Red"},
    ]
    samples = load_samples("mlvu", [write(tmp_path / "data/2_needle.json", records)])
    assert [s.answer_letter for s in samples] == [None, "C"]
    assert "2_needle.json#0, field 'answer': 'Green' is not one of the candidates" in caplog.text


def test_mvbench_windows_and_frame_folders(tmp_path):
    record = {"video": "s01e02_seg01", "question": "q?", "candidates": ["a", "b"], "answer": "b", "start": 3.4, "end": 12.9}
    (sample,) = load_samples("mvbench", [write(tmp_path / "json/episodic_reasoning.json", [record])])
    assert (sample.clip, sample.frame_rate, sample.answer_letter) == ((3.4, 12.9), 3.0, "B")
    assert sample.video == "tvqa/frames_fps3_hq/s01e02_seg01"
    (plain,) = load_samples("mvbench", [write(tmp_path / "json/action_antonym.json", [{**record, "video": "x.mp4"}])])
    assert plain.frame_rate is None


def test_music_avqa_synthetic_videos_and_repeated_question_ids(tmp_path):
    samples = load_samples("music_avqa", music_avqa_files(tmp_path))
    assert samples[1].video == "MUSIC-AVQA-videos-Synthetic/sa1234.mp4"
    assert samples[1].groups == {"modality": "Audio-Visual", "type": "Audio-Visual/Counting"}


def test_sqa3d_answer_outside_vocabulary_becomes_unknown(tmp_path):
    files = sqa3d_files(tmp_path)
    assert load_samples("sqa3d", files)[1].answers == ("unknown",)
    assert load_samples("sqa3d", files[:2])[1].answers == ("rarely seen answer",)
    assert load_samples("sqa3d", files)[1].groups == {"type": "Others"}


def test_sqa3d_scanqa_format_matches_balanced_files(tmp_path):
    balanced = load_samples("sqa3d", sqa3d_files(tmp_path))
    converted = [
        {
            "answers": [s.answers[0]],
            "object_ids": [],
            "object_names": [],
            "question": s.question,
            "situation": s.prompt[: -len(s.question) - 1],
            "question_id": int(s.id),
            "scene_id": s.scene_id,
            "position": [0.1, 0.2, 0.0, 1.0, 0.0, 0.0, 0.0],
        }
        for s in balanced
    ]
    scanqa_format = load_samples("sqa3d", [write(tmp_path / "SQA_test.json", converted)])
    assert [(s.id, s.prompt, s.answers, s.groups) for s in scanqa_format] == [
        (s.id, s.prompt, s.answers, s.groups) for s in balanced
    ]


def test_videomme_reads_the_official_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="reading parquet needs pyarrow")
    import pyarrow as pa

    rows = json.loads(videomme_files(tmp_path)[0].read_text())
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    (sample,) = load_samples("videomme", [path])
    assert (sample.id, sample.answer_letter, sample.options[2]) == ("001-1", "C", "Four.")


def test_llava_video_training_subset_is_the_first_two_records_of_each_long_video(tmp_path, capsys):
    from pave.cli import main

    def record(video_id, k, source=None):
        return {
            "id": video_id,
            **({"data_source": source} if source else {}),
            "video": f"{video_id}.mp4",
            "conversations": [{"from": "human", "value": f"<image>\nq{k}"}, {"from": "gpt", "value": f"a{k}"}],
        }

    # Records of one video are interleaved with another's; the bucket may come from the folder name.
    long_records = [record("long", 0), record("other", 0), record("long", 1), record("long", 2), record("other", 1)]
    short_records = [record("short", k, "0_30_s_youtube_v0_1") for k in range(3)]
    files = [
        write(tmp_path / "2_3_m_youtube_v0_1/a.json", long_records),
        write(tmp_path / "0_30_s_youtube_v0_1/b.json", short_records),
    ]
    out = tmp_path / "subset.json"
    assert main(["subset", "--task", "llava_video", "--annotations", *map(str, files), "--out", str(out)]) == 0
    samples = load_samples("llava_video", [out])
    assert [s.id for s in samples] == ["long#0", "other#0", "long#1", "other#1"]
    assert [s.question for s in samples] == ["q0", "q0", "q1", "q1"]
    assert {s.groups["duration"] for s in samples} == {"2_3_m"}
    assert main(["subset", "--task", "llava_video", "--annotations", str(files[1]), "--out", str(out)]) == 1


# --- malformed records: the message names the file, the record index and the field


@pytest.mark.parametrize(
    ("task", "index", "field", "break_record"),
    [
        ("avqa", 0, "multi_choice", lambda r: r[0].pop("multi_choice")),
        ("avqa", 0, "answer", lambda r: r[0].update(answer=7)),
        ("music_avqa", 1, "type", lambda r: r[1].update(type="Audio, Counting")),
        ("music_avqa", 0, "templ_values", lambda r: r[0].update(templ_values='["left"]')),
        ("scanqa", 0, "question_id", lambda r: r[0].update(question_id=5)),
        ("mvbench", 0, "answer", lambda r: r[0].update(answer="Danced.")),
        ("mlvu", 0, "candidates", lambda r: r[0].pop("candidates")),
        ("videomme", 0, "answer", lambda r: r[0].update(answer="E")),
        (
            "llava_video",
            1,
            "conversations[1].from",
            lambda r: r[1]["conversations"][1].update({"from": "human"}),
        ),
    ],
)
def test_malformed_record_names_file_index_and_field(tmp_path, task, index, field, break_record):
    path = FIXTURES[task](tmp_path)[0]
    records = json.loads(path.read_text())
    break_record(records)
    path.write_text(json.dumps(records))
    with pytest.raises(AnnotationError) as exc:
        load_samples(task, [path])
    message = str(exc.value)
    assert message.startswith(f"{path}, record {index}, field '{field}': ")
    assert (exc.value.index, exc.value.field) == (index, field)


def test_malformed_nested_field_in_wrapped_file(tmp_path):
    path = avsd_files(tmp_path)[0]
    content = json.loads(path.read_text())
    del content["dialogs"][1]["dialog"][0]["answer"]
    path.write_text(json.dumps(content))
    with pytest.raises(AnnotationError, match=r"record 1, field 'dialog\[0\]\.answer': missing"):
        load_samples("avsd", [path])


def test_wrong_wrapper_and_bad_json_are_reported(tmp_path):
    wrapped = write(tmp_path / "proficiency_demonstrator_val.json", {"takes": []})
    with pytest.raises(AnnotationError, match="top-level key 'annotations'"):
        load_samples("egoexo_proficiency", [wrapped])
    broken = tmp_path / "val_qa.json"
    broken.write_text('[{"id": 1,]')
    with pytest.raises(AnnotationError, match=r"val_qa\.json: not valid JSON \(line 1"):
        load_samples("avqa", [broken])


def test_duplicate_ids_across_files_are_rejected(tmp_path):
    first = avqa_files(tmp_path / "a")[0]
    second = avqa_files(tmp_path / "b")[0]
    with pytest.raises(AnnotationError, match="repeats the one from val_qa.json#0"):
        load_samples("avqa", [first, second])


def test_unknown_task_and_unknown_mvbench_file(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        get_loader("kinetics")
    with pytest.raises(AnnotationError, match="unknown MVBench task file"):
        load_samples("mvbench", [write(tmp_path / "json/dance.json", [])])


# --- missing media is reported per item


def test_missing_media_lists_each_absent_item(tmp_path):
    samples = load_samples("egoexo_proficiency", egoexo_proficiency_files(tmp_path / "ann"))
    root = tmp_path / "media"
    present = [samples[0].video, *samples[0].exo_videos[:3]]
    for rel in present:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    missing = missing_media(samples, root)
    assert [(m.sample_id, m.path) for m in missing] == [(samples[0].id, root / samples[0].exo_videos[3])]


def test_missing_media_accepts_other_video_extensions_and_scene_folders(tmp_path):
    videomme = load_samples("videomme", videomme_files(tmp_path / "ann"))
    (tmp_path / "data").mkdir()
    assert len(missing_media(videomme, tmp_path)) == 1
    (tmp_path / "data/XXXXXXXXXXX.mkv").touch()
    assert missing_media(videomme, tmp_path) == []
    scanqa = load_samples("scanqa", scanqa_files(tmp_path / "ann"))
    assert [m.path.name for m in missing_media(scanqa, tmp_path)] == ["scene0999_00"]
    (tmp_path / "scene0999_00").mkdir()
    assert missing_media(scanqa, tmp_path) == []


# --- the protocols: each task's prompt is the text its source feeds the model, character for character

AVQA_START = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
ANSWER_WITH = "Answer with the option's letter from the given choices directly."

# task -> the prompt of the first sample of its fixture, as the source builds it
PROMPTS = {
    # authors' eval_pave_avqa.py: start_prompt + question + "\n" + "A." + option ... + end_prompt
    "avqa": AVQA_START + "What is making the ringing sound?\nA.bell\nB.phone\nC.alarm clock\nD.bicycle\n" + ANSWER_WITH,
    # lmms-eval videomme_doc_to_text: option prompt, question, labelled options, "\n" + post prompt
    "videomme": AVQA_START + "How many planets are shown?\nA. Two.\nB. Three.\nC. Four.\nD. Five.\n\n" + ANSWER_WITH,
    # lmms-eval mvbench: "Question:" + question + "\nOption:\n" + "(A) ...\n" lines + post prompt
    "mvbench": (
        "Question:What happened after the person took the cup?\nOption:\n(A) Put down the cup.\n"
        "(B) Opened the door.\n(C) Sat on the bed.\nOnly give the best option.\n"
    ),
    # lmms-eval mlvu (late 2024): "\n" + question with options + post prompt + "\n" + "Best option: ("
    "mlvu": (
        "\nQuestion: What colour is the car the hero drives?\nOptions:\n(A) Red\n(B) Blue\n(C) Black\n(D) White\n"
        "Only give the best option.\n\nBest option: ("
    ),
    "avsd": "what does he do at the end ?",
    "music_avqa": "What is the instrument on the left of violin？",
}


@pytest.mark.parametrize("task", sorted(PROMPTS))
def test_prompt_is_the_sources_text(task, tmp_path):
    assert load_samples(task, FIXTURES[task](tmp_path))[0].prompt == PROMPTS[task]


def test_egoexo_asks_the_authors_question(tmp_path):
    prompt = load_samples("egoexo_proficiency", FIXTURES["egoexo_proficiency"](tmp_path))[0].prompt
    assert prompt.startswith("In this video, a human is performing an activity. Your goal is to evaluate")
    assert prompt.endswith("precision, and expertise. Example Output: Early Expert")


def test_every_task_has_a_protocol_with_its_source():
    for task in TASKS:
        protocol = get_protocol(task)
        assert isinstance(protocol, TaskProtocol) and protocol.source, task
        assert protocol.num_frames == 32
    # lmms-eval's multiple-choice tasks generate 16 tokens; the authors' own scripts 1024.
    assert {t: get_protocol(t).max_new_tokens for t in ("videomme", "mvbench", "mlvu", "avsd", "scanqa")} == {
        "videomme": 16, "mvbench": 16, "mlvu": 16, "avsd": 1024, "scanqa": 1024,
    }
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_protocol("nope")


def test_deviations_name_each_setting_that_differs():
    protocol = TaskProtocol(max_new_tokens=16)
    used = {"system_prompt": "You are a helpful assistant.", "max_new_tokens": 16, "num_frames": 8}
    assert protocol.deviations(used, "You are a helpful assistant.") == ["num_frames: 8 (the protocol's is 32)"]
    assert protocol.deviations({**used, "system_prompt": ""}, "You are a helpful assistant.")[0].startswith(
        "system_prompt: ''"
    )


# --- every bundled recipe names files in a layout its task's loader reads


def renamed(files, name):
    """The fixture's files, the first under the name a recipe gives it (same layout)."""
    return [files[0].rename(files[0].with_name(name)), *files[1:]]


def sqa3d_scanqa_format_files(root):
    record = {"question_id": 1, "scene_id": "scene0000_00", "situation": "I sit.", "question": "What is left?", "answers": ["door"]}
    return [write(root / "SQA_train.json", [record])]


RECIPE_FORMATS = {
    "avsd_train.json": avsd_v1_files,
    "train_qa.json": lambda root: renamed(avqa_files(root), "train_qa.json"),
    "avqa-train.json": lambda root: renamed(music_avqa_files(root), "avqa-train.json"),
    "ScanQA_v1.0_train.json": lambda root: renamed(scanqa_files(root), "ScanQA_v1.0_train.json"),
    "SQA_train.json": sqa3d_scanqa_format_files,
    "proficiency_demonstrator_train.json": lambda root: renamed(
        egoexo_proficiency_files(root), "proficiency_demonstrator_train.json"
    ),
    "subset.json": lambda root: renamed(llava_video_files(root), "subset.json"),
    "0_30_s_academic_v0_1_cap_processed.json": lambda root: renamed(
        llava_video_files(root), "0_30_s_academic_v0_1_cap_processed.json"
    ),
}


@pytest.mark.parametrize("name", recipes.names())
def test_each_recipe_names_files_its_loader_reads(name, tmp_path):
    recipe = load_recipe(recipes.find(name))
    for number, annotation in enumerate([*recipe.data.annotations, *recipe.data.validation]):
        basename = Path(annotation).name
        assert basename in RECIPE_FORMATS, f"{name}: no fixture in the layout of {basename}"
        files = RECIPE_FORMATS[basename](tmp_path / str(number))
        assert files[0].name == basename
        assert load_samples(recipe.data.task, files)
