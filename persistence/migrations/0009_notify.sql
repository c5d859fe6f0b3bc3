-- A directive's [notify] settings (its webhook), as given in its file.
ALTER TABLE directives ADD COLUMN notify jsonb NOT NULL DEFAULT '{}';
