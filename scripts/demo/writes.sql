-- The demo's writes: inserts, an update, a delete, across users and the order shards.
USE shop;
INSERT INTO users (id, email, name, password) VALUES
    (1, 'ada@example.com', 'Ada Lovelace', 'secret-1'),
    (2, 'alan@example.com', 'Alan Turing', 'secret-2');
INSERT INTO orders_00 (id, user_id, status, amount, items) VALUES
    (100, 1, 'new', 12.30, '{"sku":["A-1","B-2"],"count":2}');
INSERT INTO orders_01 (id, user_id, status, amount, items) VALUES
    (101, 2, 'new', 99.99, '{"sku":["C-3"],"count":1}');
INSERT INTO orders_02 (id, user_id, status, amount, items) VALUES
    (102, 1, 'new', 5.00, '{"sku":["D-4"],"count":1}');
INSERT INTO orders_03 (id, user_id, status, amount, items) VALUES
    (103, 2, 'new', 250.00, '{"sku":["E-5","F-6","G-7"],"count":3}');
UPDATE orders_00 SET status = 'paid' WHERE id = 100;
UPDATE users SET email = 'ada@lovelace.example' WHERE id = 1;
DELETE FROM orders_02 WHERE id = 102;
