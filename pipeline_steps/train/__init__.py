"""Training steps, one module per model kind; `devices` says which accelerator a framework will use."""
