"""ddrescue's other modes over the same map and output: fill mode (-F) and generate mode (-G)."""
