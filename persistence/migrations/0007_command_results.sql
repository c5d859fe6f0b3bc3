-- A command's result: the status its directive was left in when it was applied, so
-- the process that issued it can answer with what the command did, not with whatever
-- the directive has moved on to since (a resumed directive may complete at once).
ALTER TABLE directive_commands ADD COLUMN result text;
