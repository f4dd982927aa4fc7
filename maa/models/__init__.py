"""The networks and their math (nn.Modules, schedules, samplers); nothing here trains or reads a data set."""
