"""What every command leans on and nothing of the model knows: atomic writes, ownership of output folders, the run
lock, the two kinds of failure, logging, the cache folder, the config files and `KEY=VALUE` parsing."""
