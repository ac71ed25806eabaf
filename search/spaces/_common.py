"""Names shared by the spaces (plain strings: a space module must stay cheap to import)."""

# Video-only and audio-only first, then the seed's fusion methods 1-7 (section 3.3).
FUSION_METHODS = [
    "video",
    "audio",
    "prob_product",
    "logit_mean",
    "late_joint",
    "before_fc",
    "before_dropout",
    "early_1024",
    "early_512",
]
POOLINGS = ["mean", "max", "cnn", "softdbow", "netfv", "netvlad", "netrvlad"]
CLUSTERED_POOLINGS = {"softdbow", "netfv", "netvlad", "netrvlad"}
