"""The names the command line offers, importable without torch so that ``pave --help`` and
argument checking stay fast. The modules that implement them re-export them."""

# Side channels with a built-in encoder (pave.sidechannels).
SIDE_CHANNEL_KINDS = ("audio", "video", "3d", "exo")
# Base models whose configs are bundled (pave.configs), for FLOPs accounting without downloads.
BUNDLED_BASES = ("llava-onevision-0.5b", "llava-onevision-7b", "llava-video-7b", "video-llava-7b", "qwen2.5-vl-7b")
# The paper's accounting defaults (Appendix B.5): prompt tokens and video seconds.
FLOPS_TEXT_TOKENS = 40  # following the paper's reference [55]
FLOPS_DURATION = 120.0
# Model dtypes the commands accept (pave.models.devices): auto = bfloat16 on a GPU, float32 on the CPU.
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
