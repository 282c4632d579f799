"""ptycho-launch: trains ptycho_torch on SLURM through submitit, or locally."""
