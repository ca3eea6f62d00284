-- spanline hot store, version 2: inserts write compact parts.
-- A part above min_bytes_for_wide_part (default 10 MB, ~7k spans here) is written "wide": two
-- files per column and subcolumn, ~150 files for spans. On the embedded engine that made an
-- insert of 10k spans take 2.2x as long as the same rows as one compact part (measured:
-- 240 ms vs 108 ms; 20k spans 520 ms vs 195 ms). Background merges still produce wide parts
-- once a merged part passes 256 MB, so columns of large parts are read one file each.

ALTER TABLE {database}.spans MODIFY SETTING min_bytes_for_wide_part = 268435456;

ALTER TABLE {database}.logs MODIFY SETTING min_bytes_for_wide_part = 268435456;
