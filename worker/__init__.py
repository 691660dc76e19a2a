"""The GPU worker: claims jobs over HTTP, runs minidalle, posts grids back (see issue: the home worker)."""
