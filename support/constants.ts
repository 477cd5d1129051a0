/** Constants shared by test/ and bench/. */

/** The account id of every test world: moto's default account, and the one the unit tests' ARNs name. */
export const ACCOUNT = '123456789012';
