"""Case memory: the shared-memory case store (segment, slot table, layout, codec) and agent contexts."""
