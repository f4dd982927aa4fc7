"""From manifest rows to mels and captions: the `maa mel` job, mel data sets, reprogramming, captioning."""
