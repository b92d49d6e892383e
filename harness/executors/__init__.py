"""Where runs come from: the cache or training in this process (local), the cache alone (collect), a
SLURM job array (slurm)."""
