"""Log files: reading (tail, follow), backups at restart, and live rotation."""
