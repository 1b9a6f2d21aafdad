-- Test data: a handful of well-known addresses, each referencing a zip code loaded by 02.
CREATE TABLE test_addresses (
    id     INT          NOT NULL PRIMARY KEY,
    label  VARCHAR(64)  NOT NULL,
    street VARCHAR(100) NOT NULL,
    zip    CHAR(5)      NOT NULL,
    CONSTRAINT fk_test_addresses_zip FOREIGN KEY (zip) REFERENCES zip_codes (zip)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT INTO test_addresses (id, label, street, zip) VALUES
    (1, 'Empire State Building', '350 Fifth Avenue', '10001'),
    (2, 'Boston City Hall', '1 City Hall Square', '02108'),
    (3, 'Union Station', '50 Massachusetts Avenue NE', '20001'),
    (4, 'Art Institute', '111 South Michigan Avenue', '60601'),
    (5, 'Pike Place Market', '85 Pike Street', '98101'),
    (6, 'Dodger Stadium', '1000 Vin Scully Avenue', '90012'),
    (7, 'Union Station Denver', '1701 Wynkoop Street', '80202'),
    (8, 'Ryman Auditorium', '116 Rep. John Lewis Way North', '37203'),
    (9, 'Old State House', '800 Main Street', '06103'),
    (10, 'Iolani Palace', '364 South King Street', '96813');
