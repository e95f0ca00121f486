"""Analysis of run dirs: tidy pandas frames from metrics.jsonl and the resolved configs (load),
the paper's tables (tables) and figures (figures), one report command (report), and a one-line
per-run summary (summary)."""
