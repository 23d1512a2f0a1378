// (being written by the picker work)
