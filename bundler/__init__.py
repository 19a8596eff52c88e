"""fedledger bundler: verify, evaluate, render and package evidence."""
