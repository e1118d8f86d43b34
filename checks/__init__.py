"""Built-in checks: one module per component. Importing a module registers its checks."""
