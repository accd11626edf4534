"""Runs and files: run folders (runs), self-describing safetensors exports (checkpoint), atomic writes,
locks and checked reads (files), downloads (download), and what zoo shows of them: text from files
printed safely (display) and pictures (plotting)."""
