"""Read-only query surface over the hot store: `spanline query`, `spanline trace`, and the
local endpoint that lets them work while `spanline up` owns the embedded engine."""
