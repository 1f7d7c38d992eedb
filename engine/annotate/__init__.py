"""After the search: review decisions on hits (`review`) and the object memory built from them
(`objects`: multi-view search, recall, graph adaptation)."""
