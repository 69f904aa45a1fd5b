"""The map layer: ddrescue's block map and mapfile format, the map book (the map, its domain, its
lock and its saves), the map as a grid, and ddrescuelog's operations."""
