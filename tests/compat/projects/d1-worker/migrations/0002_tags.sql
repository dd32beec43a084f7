-- Migration number: 0002 	 tags; a trigger body holds semicolons
CREATE TABLE tags (note_id INTEGER REFERENCES notes(id), tag TEXT);
CREATE TRIGGER notes_tagged AFTER INSERT ON notes BEGIN
  INSERT INTO tags VALUES (new.id, 'new');
END;
