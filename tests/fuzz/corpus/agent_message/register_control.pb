

bad[2Jname
a
bÿÿÿÿÿÿÿÿÿ