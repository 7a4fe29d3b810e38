"""``bgr --watch``: the foreground loop, its file-watching backends, ignore rules and debouncing."""
