"""The rescue layer: the source and output ends, the rescue book that performs reads and records
them in the map book, its limits, logs and rates, and the checks that prepare a run."""
