"""Claims of the 'laws' strand (Simon et al. 2026, Table 1): one file per claim, each with a module-level CLAIM."""
