-- Zip code schema: states and their zip codes.
-- Drops the sample tables first so the four sample scripts can be applied again from the top.
SET client_min_messages = warning;

DROP TABLE IF EXISTS test_addresses;
DROP TABLE IF EXISTS zip_codes;
DROP TABLE IF EXISTS states;

CREATE TABLE states (
    code CHAR(2)     NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL
);

CREATE TABLE zip_codes (
    zip        CHAR(5)      NOT NULL PRIMARY KEY,
    city       VARCHAR(64)  NOT NULL,
    state_code CHAR(2)      NOT NULL REFERENCES states (code),
    latitude   DECIMAL(9,6) NOT NULL,
    longitude  DECIMAL(9,6) NOT NULL
);
