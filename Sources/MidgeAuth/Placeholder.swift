import MidgeCore
import COpenSSL
