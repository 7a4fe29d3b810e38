"""bgr-guard: keeps bgr processes alive, rotates their logs and pulls their repositories."""
