-- A spatial change with PostgreSQL's built-in geometric types (no PostGIS needed): every zip code gets a
-- point location (x = longitude, y = latitude), made NOT NULL and indexed with GiST for nearest-neighbour
-- searches (ORDER BY location <-> point(...)).
ALTER TABLE zip_codes ADD COLUMN location point;

UPDATE zip_codes SET location = point(longitude, latitude);

ALTER TABLE zip_codes ALTER COLUMN location SET NOT NULL;

CREATE INDEX zip_codes_location_gist ON zip_codes USING gist (location);
