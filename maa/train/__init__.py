"""Training: the one loop, discriminators, and per model its data set, Task and run-folder setup."""
