"""Analysis of run dirs: tidy pandas frames from metrics.jsonl and the resolved configs."""
