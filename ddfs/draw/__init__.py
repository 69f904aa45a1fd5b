"""Drawing the map: PNG, SVG, HTML and terminal pictures of a map grid."""
