"""Files and what the user sees: result sets written whole, snapshots
read without pickle, figures, progress."""
