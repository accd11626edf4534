"""The contract between zoo and its plugins: what they register (specs), how configs are made from
options (config), and the plugin manager that finds them (registry). Nothing here imports torch."""
