"""Order operations: admission, allocation (the allocator) and queue positions."""
