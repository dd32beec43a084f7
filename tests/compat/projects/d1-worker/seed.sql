-- Loaded with `wrangler d1 execute --remote --file`.
INSERT INTO notes (body) VALUES ('first; with a semicolon');
INSERT INTO notes (body) VALUES ('it''s the second');
