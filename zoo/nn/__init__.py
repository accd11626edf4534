"""Building networks: the cell config and presets (cells), stacking and directions around a plain cell
(layers), the network around a cell (nets), and what a network will cost before it is built (budget)."""
