import MidgeCore
