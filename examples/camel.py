"""The six-hump camel function from rsopt's quickstart."""


def six_hump_camel(x, y, scale=1.0):
    f = (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2
    return scale * f
