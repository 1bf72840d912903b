"

7/dev/test"hello
[31mred
