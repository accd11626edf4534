"""The training loop and what it needs: the plan of a run (plan), the one loop (training), threads on a
shared machine (threads), several processes (distributed), and the splits batches come from (data)."""
