"""A straight Python 3 port of the post's code: the independent reference.

The tests hold the package's loop to it bit for bit.  Changed from the
post: Python 3; ``cleargrads`` for ``zerograds`` (the same bits);
``float(loss.data)``, the float64 sum of the post's NumPy 1.x; the
permutation a parameter; the loops functions, without plots.
"""
import numpy as np
from chainer import Chain, Variable
import chainer.functions as F
import chainer.links as L


class MyChain(Chain):
    def __init__(self, n_units=10):
        super(MyChain, self).__init__(
            l1=L.Linear(1, n_units),
            l2=L.Linear(n_units, n_units),
            l3=L.Linear(n_units, 1))

    def __call__(self, x_data, y_data):
        x = Variable(x_data.astype(np.float32).reshape(len(x_data), 1))
        y = Variable(y_data.astype(np.float32).reshape(len(y_data), 1))
        return F.mean_squared_error(self.predict(x), y)

    def predict(self, x):
        h1 = F.relu(self.l1(x))
        h2 = F.relu(self.l2(h1))
        h3 = self.l3(h2)
        return h3


def get_dataset(N):
    x = np.linspace(0, 2 * np.pi, N)
    y = np.sin(x)
    return x, y


def normal_loop(model, optimizer, x_train, y_train, n_epoch, batchsize,
                permutation):
    N = len(x_train)
    normal_losses = []
    for epoch in range(1, n_epoch + 1):
        perm = permutation(N)
        sum_loss = 0
        for i in range(0, N, batchsize):
            x_batch = x_train[perm[i:i + batchsize]]
            y_batch = y_train[perm[i:i + batchsize]]
            model.cleargrads()
            loss = model(x_batch, y_batch)
            sum_loss += float(loss.data) * batchsize
            loss.backward()
            optimizer.update()

        average_loss = sum_loss / N
        normal_losses.append(average_loss)
    return normal_losses


def hybrid_loop(model, optimizer, x_train, y_train, n_epoch, batchsize,
                permutation):
    N = len(x_train)
    hybrid_losses = []
    for order in ["fixed", "random"]:
        for epoch in range(1, (n_epoch + 1) // 2):
            perm = permutation(N)
            sum_loss = 0
            for i in range(0, N, batchsize):
                if order == "fixed":
                    x_batch = x_train[i:i + batchsize]
                    y_batch = y_train[i:i + batchsize]
                elif order == "random":
                    x_batch = x_train[perm[i:i + batchsize]]
                    y_batch = y_train[perm[i:i + batchsize]]

                model.cleargrads()
                loss = model(x_batch, y_batch)
                sum_loss += float(loss.data) * batchsize
                loss.backward()
                optimizer.update()

            average_loss = sum_loss / N
            hybrid_losses.append(average_loss)
    return hybrid_losses
