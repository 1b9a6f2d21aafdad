-- Zip code schema: states and their zip codes.
-- Drops the sample tables first so the four sample scripts can be applied again from the top.
-- sql_notes = 0 keeps "Unknown table" notes from the first run out of the tool's warning report.
SET @saved_sql_notes = @@sql_notes, sql_notes = 0;
DROP TABLE IF EXISTS test_addresses;
DROP TABLE IF EXISTS zip_codes;
DROP TABLE IF EXISTS states;
SET sql_notes = @saved_sql_notes;

CREATE TABLE states (
    code CHAR(2)     NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE zip_codes (
    zip        CHAR(5)      NOT NULL PRIMARY KEY,
    city       VARCHAR(64)  NOT NULL,
    state_code CHAR(2)      NOT NULL,
    latitude   DECIMAL(9,6) NOT NULL,
    longitude  DECIMAL(9,6) NOT NULL,
    CONSTRAINT fk_zip_codes_state FOREIGN KEY (state_code) REFERENCES states (code)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
