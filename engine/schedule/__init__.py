"""The schedule layer: strategies that decide the next read from the map book; ddrescue 1.27's pass
schedule is one."""
