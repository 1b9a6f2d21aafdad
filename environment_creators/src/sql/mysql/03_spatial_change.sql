-- A spatial change: every zip code gets a POINT location (x = longitude, y = latitude), then the column
-- becomes NOT NULL so it can carry a SPATIAL index (InnoDB requires both).
ALTER TABLE zip_codes ADD COLUMN location POINT NULL;

UPDATE zip_codes SET location = ST_GeomFromText(CONCAT('POINT(', longitude, ' ', latitude, ')'));

ALTER TABLE zip_codes MODIFY location POINT NOT NULL;

CREATE SPATIAL INDEX sx_zip_codes_location ON zip_codes (location);
