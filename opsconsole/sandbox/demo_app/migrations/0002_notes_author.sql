-- Expand only: a nullable column, so 2026.11.0-demo keeps working on this schema.
ALTER TABLE notes ADD COLUMN author text;
