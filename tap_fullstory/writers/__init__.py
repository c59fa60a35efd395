"""Where rows end: RECORD lines on stdout (`record_lines`), or a UTC day's BATCH part files."""
