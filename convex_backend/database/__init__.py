"""The transactional document database: persistence, MVCC reads, OCC commits, write log."""
