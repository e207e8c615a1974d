"""The transactional document database: persistence, MVCC, OCC commits, write log."""
