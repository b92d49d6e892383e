"""What is asked: claims, variants and profiles (config), the plan of cases and runs, and the records a
session keeps (case, results). Pure: no torch, no device, no I/O but results.json."""
